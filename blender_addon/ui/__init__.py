"""Blender GUI: sidebar panel, scene properties and operators."""


def register():
    pass


def unregister():
    pass
