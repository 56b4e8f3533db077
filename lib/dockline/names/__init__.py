"""Docker-style links: container names per network, and the link lines
dockline writes into containers' hosts files."""
