from .cli import app

app(prog_name="python -m connector.policy")
