rec { x = "dyn"; ${"static"} = 1; }
