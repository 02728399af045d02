"""`python -m captioner` is the `captioner` console script."""
from .cli import main

main()
