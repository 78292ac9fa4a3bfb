if false then throw "no" else "else branch"
