let counter = { count = 3; __functor = self: x: self.count * x; }; in [ (counter 2) ((counter // { count = 4; }) 2) ]
