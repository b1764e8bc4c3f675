"""Domain library of the compliance control plane, shipped to Lambda as a layer.

Handlers under ``functions/`` parse events and call one function of this package; this
package never imports a handler and never reads ``os.environ`` outside ``config``.
"""
