with { y = "with"; }; rec { y = "rec"; z = y; }.z
