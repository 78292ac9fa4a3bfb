with { map = "shadow?"; }; map (x: x) [ 1 ]
