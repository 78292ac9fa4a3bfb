{ a = 1; b = throw "strict printing forces b"; }
