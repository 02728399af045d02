"""The view rig, pure Python and numpy (never imports bpy): spec, camera patterns, conventions,
lighting presets and transforms.json."""
