"""The station's schema comes from its own Alembic migrations (issue 16, Must 3). A station
database made before them (tables by ``metadata.create_all``) is adopted as it is: its
participants stay, the change log is added, the version table is stamped. Real SQLite file."""
import sqlalchemy as sa

from connector.station import config as station_config
from connector.station.app import Station
from connector.station.store import metadata

HEAD = "st0006"  # the newest station migration (connector/station/migrations/versions)


async def test_a_station_database_from_before_migrations_is_adopted_with_its_data(tmp_path):
    station_config.init_directory(tmp_path / "st", port=0)
    settings = station_config.load(tmp_path / "st")
    path = settings.database_url.split(":///", 1)[1]
    engine = sa.create_engine(f"sqlite:///{path}")
    old = [t for t in metadata.sorted_tables if t.name != "station_changes"]  # the schema as create_all made it
    metadata.create_all(engine, tables=old)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO station_participants (id, name, jurisdiction, status, security_profile, membership, "
            "certificate_pem, certificate_sha256, public_key_sha256, enrolled_at) VALUES "
            "('p1', 'Old Org', 'HK', 'active', 'idsc:BASE_SECURITY_PROFILE', '[\"hks:StationMember\"]', 'pem', "
            "'c1', 'k1', 1.0)"))
    engine.dispose()
    station = Station(settings)
    await station.start()
    try:
        assert station.participants["p1"]["name"] == "Old Org"
    finally:
        await station.stop()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM station_alembic_version")).scalar() == HEAD
        assert conn.execute(sa.text("SELECT count(*) FROM station_changes")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM station_participants")).scalar() == 1
    engine.dispose()
