"""The gateway's routes, one router per area; app.py includes them in this order."""
