"""`socket-edge collect`: paired colour + depth/infrared frames from a RealSense (live or recorded)
into the folder layout `adapt` and `eval` read. numpy, OpenCV and pyrealsense2 only, never torch:
it runs on the device that owns the camera."""
