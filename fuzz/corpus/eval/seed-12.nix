({ a = throw "x"; } // { a = 1; }).a
