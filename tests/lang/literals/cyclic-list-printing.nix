let l = [ 1 { inner = l; } ]; in l
