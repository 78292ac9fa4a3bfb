{ f = x: x; }.f
