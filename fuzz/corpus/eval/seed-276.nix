(args@{ a ? 5 }: [ a args ]) { }
