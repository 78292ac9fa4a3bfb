let inherit ({ a = 1; b = 2; }) a; in a
