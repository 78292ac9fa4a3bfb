map builtins.typeOf [ (-1) (-1.0) (- (1)) ]
