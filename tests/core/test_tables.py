from core.tables import Tables


async def test_ensure_tables_and_ping_against_azurite(tables: Tables) -> None:
    await tables.ping()
    await tables.table("keys").upsert_entity({"PartitionKey": "p", "RowKey": "r", "n": 1})
    entity = await tables.table("keys").get_entity("p", "r")
    assert entity["n"] == 1
