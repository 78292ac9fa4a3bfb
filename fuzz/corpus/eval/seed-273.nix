(args@{ a, ... }: args.a + a) { a = 2; }
