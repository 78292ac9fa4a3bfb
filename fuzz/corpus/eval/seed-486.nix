let s = { apple = 1; apply = 2; }; in s.appel
