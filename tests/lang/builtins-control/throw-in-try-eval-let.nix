let r = builtins.tryEval (let x = throw "x"; in x); in r
