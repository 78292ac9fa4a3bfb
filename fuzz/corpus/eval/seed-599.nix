let f = x: x; in [ (f == f) ((x: x) == (x: x)) ([ f ] == [ f ]) ({ inherit f; } == { inherit f; }) ]
