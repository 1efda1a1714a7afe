-- Diabetes among patients aged 65 and over, per hospital and age band (a CTE): how many, and
-- what share of the admissions with a known flag.
WITH elderly AS (
  SELECT * FROM admissions WHERE age_band IN ('65-74', '75+')
)
SELECT hospital,
       age_band,
       SUM(diabetic)       AS diabetic_patients,
       AVG(diabetic)       AS diabetic_share,
       SUM(length_of_stay) AS bed_days,
       COUNT(*)            AS admissions
FROM elderly
GROUP BY hospital, age_band
ORDER BY hospital, age_band;
