"""Record modes, shared by the options (plugin) and the capture, in a module cheap to import."""

RECORD_MODES = ("none", "once", "new_episodes", "all")
