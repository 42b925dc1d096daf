"""The one piece of code every devicestream component may import: the event format, the CSV
columns, the layout of the shared data folder and the settings common to all components.

Nothing here opens a connection or reads the environment at import time."""
