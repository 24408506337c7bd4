"""The four techniques, each a configuration of render.Renderer plus a schedule."""
