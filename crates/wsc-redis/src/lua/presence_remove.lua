-- ARGV: set prefix, node. The node leaves at once (detach).
remove_node(ARGV[2])
return 1
