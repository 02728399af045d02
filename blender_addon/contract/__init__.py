"""Contracts shared by the add-on, the farm and the captioner: pure Python (no bpy, click or numpy),
bundled in the add-on zip. Import the modules directly; this file imports nothing."""
