let g = x: x * 2; in [ (g 1) g (let h = g; in h) 3 "s" [ ] { } ]
