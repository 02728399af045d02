"""Blender GUI: the "MVCap" sidebar tab, its scene properties and operators."""
from . import ops, panels, props

_MODULES = (props, ops, panels)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
