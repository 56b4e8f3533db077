"""The bridge plugin's configuration and naming rules."""
