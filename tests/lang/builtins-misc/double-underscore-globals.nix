[ (__add 1 2) (__length [ 1 ]) (isNull null) (removeAttrs { a = 1; } [ "a" ]) (__isFunction __add) ]
