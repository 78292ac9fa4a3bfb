with { toString = x: "with"; }; toString 1
