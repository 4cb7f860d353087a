-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d),
-- as POSTGRES_USER, who therefore owns every database. One database per adapter and one
-- per core (the core simulator), so no service can read another's tables: the adapters
-- and the cores talk only through the external streams.
CREATE DATABASE clearing_dk;
CREATE DATABASE clearing_se;
CREATE DATABASE clearing_no;
CREATE DATABASE clearing_fi;
CREATE DATABASE core_dk;
CREATE DATABASE core_se;
CREATE DATABASE core_no;
CREATE DATABASE core_fi;
