[ (toString 1) (toString 1.5) (toString true) (toString false) (toString null) (toString "s") ]
