map (x: (builtins.tryEval x).success) [ 1 (throw "t") (assert 1 == 2; 0) ]
