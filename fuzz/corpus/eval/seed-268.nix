(x: y: [ x y ]) 1 2
