({ a ? throw "unused default" }: a) { a = 1; }
