"""bpy glue: import and normalise assets, build cameras, lights and world, render an asset."""
