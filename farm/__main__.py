"""`python -m farm` is the `farm` command."""
from .cli import main

if __name__ == "__main__":
    main()
