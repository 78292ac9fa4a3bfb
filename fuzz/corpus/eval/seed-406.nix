let enabled = false; in assert enabled -> false; "ok"
