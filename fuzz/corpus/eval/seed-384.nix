let l = [ 1 2 ]; s = { a = l; }; in [ l l s s ]
