import { Hono } from "hono";

const app = new Hono();

app.get("/", (c) => c.text("Hello from a Worker built by Airflow"));
app.get("/health", (c) => c.json({ ok: true }));

export default app;
