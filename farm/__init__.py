"""MVCap Studio render farm: durable ZeroMQ broker, supervised bpy workers, asset sources, CLI."""
__version__ = "0.1.0"
