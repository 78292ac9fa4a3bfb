with (throw "not forced"); 1
