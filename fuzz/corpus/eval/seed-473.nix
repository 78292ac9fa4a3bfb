[ 1 { a = abort "deep abort"; } ]
