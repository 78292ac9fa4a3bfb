{ a = [ 1 2.5 "s" true null ]; b = { c = { }; d = [ ]; }; }
