"""What the preview rig changes in the artist's scene, remembered on the rig collection when the
rig is first built and put back by Delete Rig: the scene camera, the world and the render size
(the camera view shows the spec's aspect only while the scene renders at the spec's size).
"""
KEPT_SIZE = "mvcap_kept_size"  # [resolution_x, resolution_y, percentage, pixel_aspect_x, pixel_aspect_y]
KEPT_CAMERA = "mvcap_kept_camera"  # ID properties: they keep the artist's camera and world alive
KEPT_WORLD = "mvcap_kept_world"


def remember(scene, coll) -> None:
    """Keep what the rig is about to change; only once, so a rebuild keeps the artist's values."""
    if KEPT_SIZE in coll:
        return
    r = scene.render
    coll[KEPT_SIZE] = [r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y]
    if scene.camera is not None:
        coll[KEPT_CAMERA] = scene.camera
    if scene.world is not None:
        coll[KEPT_WORLD] = scene.world


def show_spec_size(scene, spec) -> None:
    """Render size and pixel aspect of the spec, so the camera view frames what the farm renders."""
    r = scene.render
    r.resolution_x, r.resolution_y = spec.render.resolution_x, spec.render.resolution_y
    r.resolution_percentage = 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0


def restore(scene, coll) -> None:
    """Put back what remember() kept."""
    if KEPT_SIZE not in coll:
        return
    r = scene.render
    x, y, percentage, aspect_x, aspect_y = coll[KEPT_SIZE]
    r.resolution_x, r.resolution_y, r.resolution_percentage = int(x), int(y), int(percentage)
    r.pixel_aspect_x, r.pixel_aspect_y = float(aspect_x), float(aspect_y)
    scene.camera = coll.get(KEPT_CAMERA)
    scene.world = coll.get(KEPT_WORLD)
