let x = 3; in assert x == 4; x
