"""Blender GUI: the "MVCap" sidebar tab, its scene properties and operators."""
from . import ops, ops_farm, ops_render, panels, props

_MODULES = (props, ops, ops_render, ops_farm, panels)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
