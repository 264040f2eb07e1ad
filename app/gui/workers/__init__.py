"""Workers that keep hardware, rendering and other slow calls off the GUI thread."""
