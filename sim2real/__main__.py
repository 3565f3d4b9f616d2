from sim2real.cli import app

app()
