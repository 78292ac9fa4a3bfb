map (x: throw "never") [ ]
