let y = 1; in { inherit y; y = 2; }
